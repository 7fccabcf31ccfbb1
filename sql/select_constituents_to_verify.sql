-- The constituents of the newest revision of every fixing dated $first_date to $last_date.
with newest as (
    select index_id, fixing_date, max(revision) as revision
    from fixings
    where fixing_date between $first_date and $last_date
    group by index_id, fixing_date
)

select
    c.index_id, c.fixing_date, c.provider, c.snapshot_id, c.provider_value, c.n_observations, c.included,
    c.exclusion_reason, c.weight
from fixing_constituents as c
join newest as n using (index_id, fixing_date, revision)
order by c.index_id, c.fixing_date, c.provider;
