-- The newest revision of each (index, date) of fixing_keys (registered by pipeline.fixing), if any: what a
-- new computation is compared with before anything is written.
select
    f.index_id,
    f.fixing_date,
    f.revision,
    f.status,
    coalesce(f.usd_per_gpu_hour, f.usd_per_mtok) as value,
    f.input_hash,
    f.definition_sha256,
    f.methodology_version
from fixings as f
semi join fixing_keys as k using (index_id, fixing_date)
qualify f.revision = max(f.revision) over (partition by f.index_id, f.fixing_date);
