-- The digests (table observation_digests, migration 007) of snapshot $snapshot_id, fetched at $observed_at,
-- after its load (inside the load's transaction), or with both null of every snapshot whose observations have
-- none (the scratch tables of tsi fix --observations, the benchmark, a warehouse from before migration 007).
-- A snapshot's digests are deleted with its observations when it is reloaded (delete_snapshot_digests.sql),
-- so this never leaves a stale digest behind. The branch of a null $snapshot_id is a union whose other half
-- DuckDB drops when the parameter is given (a CASE made every load scan both tables). An imported snapshot's
-- rows carry valid_until (migration 009): it is part of the group and, only then, of the first line hashed
-- ("|until=YYYY-MM-DD" at its end), so that the digests of collected rows hash as they always did.
insert into observation_digests (
    snapshot_id, provider, source, observed_at, segment, instrument_kind, instrument, price_type, valid_from,
    valid_to, valid_until, n_rows, capacity, lower_median, upper_median, n_prices, digest_sha256
)
select
    -- a snapshot's rows all carry its source and fetch time: grouping by them too cost a quarter of the
    -- statement (6 of 23 ms for 10,000 rows)
    snapshot_id, provider, any_value(source) as source, any_value(observed_at) as observed_at, segment,
    instrument_kind, instrument, price_type, valid_from, valid_to, valid_until,
    count(*) as n_rows,
    sum(coalesce(gpu_count, 1))::decimal(38, 4) as capacity,
    quantile_disc(coalesce(usd_per_gpu_hour, usd_per_mtok), 0.5)::decimal(20, 10) as lower_median,
    (-quantile_disc(-coalesce(usd_per_gpu_hour, usd_per_mtok), 0.5))::decimal(20, 10) as upper_median,
    count(distinct coalesce(usd_per_gpu_hour, usd_per_mtok)) as n_prices,
    sha256(
        snapshot_id || '|' || provider || '|' || instrument_kind || '|' || instrument || '|' || price_type || '|'
        || coalesce(strftime(valid_from, '%Y-%m-%d'), '') || '|' || coalesce(strftime(valid_to, '%Y-%m-%d'), '')
        || coalesce('|until=' || strftime(valid_until, '%Y-%m-%d'), '')
        || chr(10)
        || array_to_string(list_sort(list(
            row_key || '|' || coalesce(region, '') || '|' || coalesce(gpu_count::varchar, '') || '|'
            || coalesce(usd_per_gpu_hour, usd_per_mtok)::decimal(20, 10)::varchar
        )), chr(10))
    ) as digest_sha256
from observations
where snapshot_id in (
    select $snapshot_id where $snapshot_id is not null
    union all
    (
        select snapshot_id from observations where $snapshot_id is null
        except
        select snapshot_id from observation_digests where $snapshot_id is null
    )
)
  -- every row of a snapshot has its fetch time: the zone maps of observed_at skip the rest of the table, where
  -- a snapshot id (a hash) prunes nothing
  and ($observed_at is null or observed_at = $observed_at)
group by snapshot_id, provider, segment, instrument_kind, instrument, price_type, valid_from, valid_to, valid_until;
