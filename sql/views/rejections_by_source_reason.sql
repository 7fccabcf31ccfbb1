-- What do the parsers and checks refuse, and since when? One row per source and rejection reason: the rows
-- refused, the snapshots they came from, the first and last time such a row was observed (UTC), and one
-- detail as an example (the smallest, so that the answer is the same on every run).
create or replace view rejections_by_source_reason as
select
    source,
    reason,
    count(*) as n_rejections,
    count(distinct snapshot_id) as n_snapshots,
    min(observed_at) as first_seen_at,
    max(observed_at) as last_seen_at,
    min(detail) as example_detail
from rejections
group by source, reason
order by source, reason;
