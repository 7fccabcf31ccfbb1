-- A flow run that Prefect retries keeps its id: its record starts over.
delete from runs where run_id = $run_id;
