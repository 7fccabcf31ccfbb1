-- Methodology steps 3 and 4 (per provider): the outlier screen over the providers that have a vote, then
-- each included provider's place in its index's estimator.
--
-- provider_values: the output of select_provider_values.sql; fix_target_params: one row per target.
--
-- Modified z-score (Iglewicz and Hoaglin): z = 0.6745 (p - median) / MAD, MAD = the median of |p - median|.
-- A provider is dropped when |z| > threshold, tested without a division as 0.6745 |p - median| >
-- threshold x MAD, so the comparison is exact. The screen is skipped when MAD = 0 (more than half the
-- providers quote the median: nothing to scale by) or when fewer than outlier_min_providers have a vote.
-- Medians are exact, as in select_provider_values.sql.
--
-- A provider's weight is weight_numerator / weight_denominator (pipeline.fixing divides, in Decimal):
--   median, mean            1 / n: one provider, one vote
--   trimmed_mean            1 / (n - 2g) for the providers kept, 0 for the g lowest and g highest cut,
--                           g = floor(trim_fraction x n)
--   capped_weight_median    the provider's capped share of the listed GPUs (below)
with voting as (
    select * from provider_values where exclusion is null
),

centre as (
    select
        target_id,
        count(*) as n_voting,
        (quantile_disc(provider_value, 0.5) - quantile_disc(-provider_value, 0.5)) * 0.5 as screen_median
    from voting
    group by target_id
),

spread as (
    select
        v.target_id,
        (quantile_disc(abs(v.provider_value - c.screen_median), 0.5)
         - quantile_disc(-abs(v.provider_value - c.screen_median), 0.5)) * 0.5 as screen_mad
    from voting as v
    join centre as c using (target_id)
    group by v.target_id
),

screened as (
    select
        v.*,
        c.n_voting,
        c.screen_median,
        s.screen_mad,
        case
            when v.exclusion is not null then v.exclusion
            when p.outlier_screen = 'modified_z'
                 and c.n_voting >= p.outlier_min_providers
                 and s.screen_mad > 0
                 and 0.6745 * abs(v.provider_value - c.screen_median) > p.outlier_threshold * s.screen_mad
            then 'outlier_mad'
        end as exclusion_reason
    from provider_values as v
    join fix_target_params as p using (target_id)
    left join centre as c using (target_id)
    left join spread as s using (target_id)
),

included as (
    select s.target_id, s.provider, s.provider_value, s.capacity, p.estimator, p.trim_fraction, p.weight_cap,
           count(*) over (partition by s.target_id) as n
    from screened as s
    join fix_target_params as p using (target_id)
    where s.exclusion_reason is null
),

trimmed as (
    -- trimmed_mean: rank by value; the g lowest and g highest do not count
    select
        target_id, provider,
        row_number() over (partition by target_id order by provider_value, provider) as k,
        floor(trim_fraction * n)::bigint as g
    from included
    where estimator = 'trimmed_mean'
),

ranked as (
    -- capped_weight_median: rank by raw weight (listed GPUs), largest first, with the raw weight of that
    -- provider and every smaller one
    select
        *,
        row_number() over (partition by target_id order by capacity desc, provider) as wrank,
        sum(capacity) over (
            partition by target_id order by capacity desc, provider
            rows between current row and unbounded following
        ) as suffix_capacity
    from included
    where estimator = 'capped_weight_median'
),

cap_level as (
    -- Capping (the usual procedure: cap the largest share at weight_cap and share the excess among the rest
    -- in proportion to their raw weights, until no share exceeds the cap), in closed form: the m largest are
    -- capped, m the least j with (1 - j cap) w[j+1] <= cap (w[j+1] + ... + w[n]). If n x cap < 1 no share
    -- can hold the cap and every provider weighs the same (m = n).
    select
        target_id,
        coalesce(
            min(wrank) filter (where (1 - (wrank - 1) * weight_cap) * capacity <= weight_cap * suffix_capacity),
            any_value(n) + 1
        ) - 1 as m
    from ranked
    group by target_id
),

capped as (
    -- Shares scaled by S = w[m+1] + ... + w[n] (positive), so that no division is needed: a capped provider
    -- weighs cap x S, an uncapped one (1 - m cap) x w; the scaled shares add up to S. The capped-weight median
    -- is the lower weighted median: the lowest provider value at which the cumulative share reaches one half.
    select
        target_id, provider, adjusted,
        sum(adjusted) over (partition by target_id) as adjusted_total,
        2 * sum(adjusted) over (
            partition by target_id order by provider_value, provider rows between unbounded preceding and current row
        ) >= sum(adjusted) over (partition by target_id) as past_half
    from (
        select
            r.target_id, r.provider, r.provider_value,
            case
                when l.m >= r.n then 1
                when r.wrank <= l.m then r.weight_cap * s.suffix_capacity
                else (1 - l.m * r.weight_cap) * r.capacity
            end as adjusted
        from ranked as r
        join cap_level as l using (target_id)
        left join ranked as s on s.target_id = r.target_id and s.wrank = l.m + 1
    )
),

weighted as (
    select i.target_id, i.provider, i.estimator, i.n, t.k, t.g, c.adjusted, c.adjusted_total, c.past_half
    from included as i
    left join trimmed as t using (target_id, provider)
    left join capped as c using (target_id, provider)
)

select
    s.*,
    w.n,
    case when w.estimator = 'trimmed_mean' then (w.k > w.g and w.k <= w.n - w.g) else w.n is not null end as counts,
    case
        when w.n is null then 0
        when w.estimator = 'trimmed_mean' then case when w.k > w.g and w.k <= w.n - w.g then 1 else 0 end
        when w.estimator = 'capped_weight_median' then w.adjusted
        else 1
    end as weight_numerator,
    case
        when w.n is null then 1
        when w.estimator = 'trimmed_mean' then w.n - 2 * w.g
        when w.estimator = 'capped_weight_median' then w.adjusted_total
        else w.n
    end as weight_denominator,
    coalesce(w.past_half, false) as past_half
from screened as s
left join weighted as w using (target_id, provider)
order by s.target_id, s.provider;
