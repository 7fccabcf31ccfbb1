-- How a flow run ended: completed, completed_with_failures or failed, with its counts and failures (JSON).
update runs
set finished_at = $finished_at, outcome = $outcome, detail = $detail
where run_id = $run_id;
