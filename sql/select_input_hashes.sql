-- The input hash of each target in hash_targets (target_id), from its rows in fixing_rows (one pass of
-- select_fixing_rows.sql), every provider considered, included or not (an exclusion is a decision the
-- inputs determine):
--   provider hash  sha256 of the provider's observations as lines snapshot_id|row_key|price (the price as
--                  DECIMAL(20, 10) text, e.g. 2.9900000000), sorted in byte order, joined by line feeds
--   input hash     sha256 of the lines provider|provider hash, sorted in byte order, joined by line feeds
-- Also each provider's snapshot_id: the least of its collection's bodies (several only for a paged API).
with rows as (
    select r.target_id, r.provider, o.snapshot_id, o.row_key, r.usd_price
    from fixing_rows as r
    semi join hash_targets as h using (target_id)
    join observations as o on o.rowid = r.obs_rowid
),

providers as (
    select
        target_id,
        provider,
        min(snapshot_id) as snapshot_id,
        sha256(array_to_string(list_sort(list(snapshot_id || '|' || row_key || '|' || usd_price::varchar)), chr(10)))
            as observations_sha256
    from rows
    group by target_id, provider
),

targets as (
    select
        target_id,
        sha256(array_to_string(list_sort(list(provider || '|' || observations_sha256)), chr(10))) as input_hash
    from providers
    group by target_id
)

select p.target_id, p.provider, p.snapshot_id, t.input_hash
from providers as p
join targets as t using (target_id)
order by p.target_id, p.provider;
