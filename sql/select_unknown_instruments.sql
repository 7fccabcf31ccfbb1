-- The names the parsers refused as unknown_instrument, most frequent first: what a maintainer adds next to
-- pipeline/catalog/gpu_aliases.csv (GPUs), model_aliases.csv (models) or azure_gpu_skus.csv (Azure sizes).
-- A rejection keeps no name column: the name is the first quoted string of its detail, which every parser writes
-- as Python's repr ("GPU 'H100' (no alias rule fits ...)"; a name holding a single quote is double-quoted).
with unknown as (
    select
        r.source,
        coalesce(s.provider, '') as provider,
        case when regexp_matches(r.detail, '^[^''"]*''')
             then regexp_extract(r.detail, '''([^'']*)''', 1)
             else regexp_extract(r.detail, '"([^"]*)"', 1) end as source_instrument,
        r.detail,
        r.observed_at
    from rejections r
    left join raw_snapshots s using (snapshot_id)
    where r.reason = 'unknown_instrument'
)
select
    source,
    provider,
    source_instrument,
    count(*) as n_rows,
    max(observed_at) as last_seen,
    min(detail) as example_detail
from unknown
group by source, provider, source_instrument
order by n_rows desc, last_seen desc, source, provider, source_instrument;
