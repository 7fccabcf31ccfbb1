-- A flow run has started; `update_run` records how it ended. A row left 'running' is a run that died.
insert into runs (run_id, flow, started_at, finished_at, outcome, detail)
values ($run_id, $flow, $started_at, null, 'running', $detail);
