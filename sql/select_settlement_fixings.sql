-- One index's fixings of a date range as a settlement knows them (README "Settlement"): for each date, the
-- newest revision computed at or before $as_of (the contract's finality; null: the newest of all), as
-- sql/select_fixings_as_of.sql reads history. A date with no revision computed by then takes its first
-- revision: a fixing first computed after its correction cutoff (a backfill of imported history) is never
-- revised, so that first revision is the only one the date can have. Later revisions are never read.
with revisions as (
    select
        fixing_date,
        revision,
        status,
        coalesce(usd_per_gpu_hour, usd_per_mtok) as value,
        computed_at,
        coalesce(computed_at <= $as_of, true) as known_at_finality
    from fixings
    where index_id = $index_id
      and fixing_date between $first_day and $last_day
)
select fixing_date, revision, status, value, computed_at, known_at_finality
from revisions
qualify row_number() over (
    partition by fixing_date
    order by known_at_finality desc, case when known_at_finality then -revision else revision end
) = 1
order by fixing_date;
