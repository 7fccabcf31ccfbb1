-- Methodology steps 4 and 6, per target: the estimators over the included provider values and the
-- dispersion. pipeline.fixing picks the estimator's value, divides the sums (means) in Decimal and rounds
-- half-even to the index's precision at the very end.
--
-- screened_values (select_screened_provider_values.sql), fixing_rows (select_fixing_rows.sql) and
-- fix_target_params (one row per target).
--
-- Quantiles (p25, p75) use the method the index names, on the sorted values x[1..n]; h is a 1-based position,
-- x(h) = x[lo] + f (x[lo + 1] - x[lo]) with lo = floor(h), f = h - lo:
--   hyndman_fan_7  h = 1 + (n - 1) p      linear between order statistics: numpy's default, DuckDB quantile_cont,
--                                         Excel PERCENTILE.INC
--   hyndman_fan_6  h = (n + 1) p          held inside [1, n]: Excel PERCENTILE.EXC, Python statistics.quantiles
--   hyndman_fan_1  h = ceil(n p), f = 0   an observed value: the inverse of the empirical distribution
-- With p = 1/4 and 3/4 the fraction f is a multiple of 1/4, so every step is exact in DECIMAL.
with included as (
    select * from screened_values where exclusion_reason is null
),

considered as (
    select target_id, count(*) as n_considered from screened_values group by target_id
),

estimates as (
    select
        target_id,
        count(*) as n_providers,
        sum(n_observations) as n_observations,
        (quantile_disc(provider_value, 0.5) - quantile_disc(-provider_value, 0.5)) * 0.5 as median_value,
        sum(provider_value) as value_sum,
        sum(provider_value) filter (where counts) as counted_sum,
        count(*) filter (where counts) as counted_n,
        min(provider_value) filter (where past_half) as capped_median
    from included
    group by target_id
),

dispersion_values as (
    select i.target_id, i.provider_value as x
    from included as i
    join fix_target_params as p using (target_id)
    where p.dispersion_basis = 'provider_values'
    union all
    -- over observations: every row of the included providers' collections
    select r.target_id, r.usd_price
    from fixing_rows as r
    semi join included as i using (target_id, provider)
    join fix_target_params as p using (target_id)
    where p.dispersion_basis = 'observations'
),

dispersion_sets as (
    select target_id, list_sort(list(x)) as xs, count(*) as n, sum(x) as total
    from dispersion_values
    group by target_id
),

positions as (
    select
        d.target_id, d.xs, d.n, q.q,
        case p.quantile_method
            when 'hyndman_fan_7' then 1 + ((d.n - 1) * q.q) // 4
            when 'hyndman_fan_6' then greatest(1, least(d.n, ((d.n + 1) * q.q) // 4))
            else greatest(1, (d.n * q.q + 3) // 4)
        end as lo,
        case p.quantile_method
            when 'hyndman_fan_7' then (((d.n - 1) * q.q) % 4) * 0.25
            when 'hyndman_fan_6' then
                case when ((d.n + 1) * q.q) // 4 < 1 or ((d.n + 1) * q.q) // 4 >= d.n then 0.00
                     else (((d.n + 1) * q.q) % 4) * 0.25 end
            else 0.00
        end as f
    from dispersion_sets as d
    join fix_target_params as p using (target_id)
    cross join (values (1), (3)) as q(q)  -- q / 4: the quartiles p = 0.25 and p = 0.75
),

quartiles as (
    select
        target_id,
        max(xs[lo] + f * (xs[least(lo + 1, n)] - xs[lo])) filter (where q = 1) as p25_value,
        max(xs[lo] + f * (xs[least(lo + 1, n)] - xs[lo])) filter (where q = 3) as p75_value
    from positions
    group by target_id
)

select
    c.target_id,
    c.n_considered,
    coalesce(e.n_providers, 0) as n_providers,
    coalesce(e.n_observations, 0) as n_observations,
    e.median_value,
    e.value_sum,
    e.counted_sum,
    e.counted_n,
    e.capped_median,
    q.p25_value,
    q.p75_value,
    d.xs[1] as min_value,
    d.xs[d.n] as max_value,
    d.total as dispersion_sum,
    d.n as dispersion_n
from considered as c
left join estimates as e using (target_id)
left join dispersion_sets as d using (target_id)
left join quartiles as q using (target_id)
order by c.target_id;
