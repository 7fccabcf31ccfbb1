-- How many providers, and which, made each fixing? One row per index and fixing date, in the date's newest
-- revision: the providers included (for a basket: its member indices), those considered but left out (their
-- reasons are in fixing_constituent_details), and the counts. n_providers is the fixing's own count: for a
-- suppressed fixing, the providers that had a price, none of them included.
create or replace view provider_coverage as
with newest_revisions as (
    select index_id, fixing_date, revision, status, n_providers, n_observations
    from fixings
    qualify revision = max(revision) over (partition by index_id, fixing_date)
),

counted as (
    select
        c.index_id,
        c.fixing_date,
        c.revision,
        count(*) as n_considered,
        count(*) filter (where c.included) as n_included,
        count(*) filter (where not c.included) as n_excluded,
        list(c.provider order by c.provider) filter (where c.included) as included_providers,
        list(c.provider order by c.provider) filter (where not c.included) as excluded_providers
    from fixing_constituents as c
    semi join newest_revisions as r using (index_id, fixing_date, revision)
    group by all
)

select
    r.index_id,
    r.fixing_date,
    r.revision,
    r.status,
    r.n_providers,
    coalesce(k.n_considered, 0) as n_providers_considered,
    coalesce(k.n_included, 0) as n_providers_included,
    coalesce(k.n_excluded, 0) as n_providers_excluded,
    coalesce(k.included_providers, []::varchar[]) as included_providers,
    coalesce(k.excluded_providers, []::varchar[]) as excluded_providers,
    r.n_observations
from newest_revisions as r
left join counted as k using (index_id, fixing_date, revision)
order by r.index_id, r.fixing_date;
