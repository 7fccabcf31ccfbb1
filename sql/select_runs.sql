-- The newest flow runs first, for people watching the schedule.
select run_id, flow, started_at, finished_at, outcome, detail
from runs
order by started_at desc, run_id
limit $limit;
