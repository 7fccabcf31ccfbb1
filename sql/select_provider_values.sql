-- Methodology step 2b: one value per provider and target (one provider, one vote), and the vote floor.
--
-- fixing_rows: the output of select_fixing_rows.sql. fix_target_params: one row per target with its index's
-- parameters.
--
-- Every median here is exact in DECIMAL: quantile_disc(x, 0.5) returns an observed value, the lower middle
-- one (0-based position floor((n - 1) / 2)); -quantile_disc(-x, 0.5) the upper middle one. Their mean is the
-- middle value on an odd count and half the sum of the two middle values on an even count. No float.
with legs as (
    -- One pass over the rows: each provider's leg (a price type; a blended price has two) with its counts and
    -- the median of all its rows (regions, instance sizes, endpoints): the median_of_rows value.
    select
        target_id, provider, price_type,
        min(segment) as segment,
        count(*) as n_observations,
        sum(gpu_weight) as capacity,  -- GPUs listed (rows without a GPU count weigh 1): capped_weight_median
        (quantile_disc(usd_price, 0.5) - quantile_disc(-usd_price, 0.5)) * 0.5 as row_median,
        -- the collection(s) the rows come from (source, fetch time; chr(0) stands for no source), for the
        -- input hash: one unless the provider is priced by two sources
        min(coalesce(source, chr(0))) as first_source,
        max(coalesce(source, chr(0))) as last_source,
        min(observed_at) as first_observed_at,
        max(observed_at) as last_observed_at
    from fixing_rows
    group by target_id, provider, price_type
),

floor_counts as (
    -- distinct prices per leg, counted only for the targets with a vote floor above 1 (a provider with a row
    -- always has one distinct price): the count is the costliest aggregate here
    select r.target_id, r.provider, r.price_type, count(distinct r.usd_price) as distinct_prices
    from fixing_rows as r
    semi join (select target_id from fix_target_params where min_distinct_prices > 1) as f using (target_id)
    group by r.target_id, r.provider, r.price_type
),

ruled as (
    select
        l.*,
        f.distinct_prices,  -- null where not counted (no vote floor)
        case
            when l.segment = 'marketplace' and p.marketplace_value = 'gpu_weighted_median' then 'gpu_weighted_median'
            else p.provider_value
        end as value_rule
    from legs as l
    join fix_target_params as p using (target_id)
    left join floor_counts as f
        on f.target_id = l.target_id and f.provider = l.provider and f.price_type = l.price_type
),

other_rule_rows as (
    -- the rows of the legs valued by another rule than median_of_rows, read again
    select r.*, s.value_rule
    from fixing_rows as r
    join ruled as s using (target_id, provider, price_type)
    where s.value_rule <> 'median_of_rows'
),

-- median_of_region_medians: the median within each region (rows without a region form one region), then
-- the median of those medians, so that a provider listing many regions at one price does not outweigh one
-- that lists a single region
region_medians as (
    select target_id, provider, price_type, region,
           (quantile_disc(usd_price, 0.5) - quantile_disc(-usd_price, 0.5)) * 0.5 as region_median
    from other_rule_rows
    where value_rule = 'median_of_region_medians'
    group by target_id, provider, price_type, region
),

by_region as (
    select target_id, provider, price_type,
           (quantile_disc(region_median, 0.5) - quantile_disc(-region_median, 0.5)) * 0.5 as leg_value
    from region_medians
    group by target_id, provider, price_type
),

-- gpu_weighted_median (marketplace providers): the lower weighted median of the offers, each weighing its
-- GPU count: the lowest price p such that the offers priced at or below p hold at least half of all the
-- GPUs offered (2 x cumulative >= total). Equal prices sort together, so their order does not matter.
weighted as (
    select
        target_id, provider, price_type, usd_price,
        sum(gpu_weight) over (
            partition by target_id, provider, price_type
            order by usd_price, obs_rowid
            rows between unbounded preceding and current row
        ) as cumulative,
        sum(gpu_weight) over (partition by target_id, provider, price_type) as total
    from other_rule_rows
    where value_rule = 'gpu_weighted_median'
),

by_weight as (
    select target_id, provider, price_type, min(usd_price) filter (where 2 * cumulative >= total) as leg_value
    from weighted
    group by target_id, provider, price_type
),

valued as (
    select
        r.*,
        case r.value_rule
            when 'median_of_rows' then r.row_median
            when 'median_of_region_medians' then g.leg_value
            else w.leg_value
        end::decimal(38, 20) as leg_value
    from ruled as r
    left join by_region as g using (target_id, provider, price_type)
    left join by_weight as w using (target_id, provider, price_type)
),

combined as (
    -- A blended price is share_input x input value + share_output x output value of the same provider and
    -- collection; the shares are exact decimals (pipeline.definitions checks), so the product is exact.
    select
        v.target_id, v.provider,
        min(v.segment) as segment,
        sum(v.n_observations) as n_observations,
        sum(v.capacity) as capacity,
        min(v.value_rule) as value_rule,
        min(v.first_source) as first_source,
        max(v.last_source) as last_source,
        min(v.first_observed_at) as first_observed_at,
        max(v.last_observed_at) as last_observed_at,
        min(v.distinct_prices) as distinct_prices,  -- a blended price: the fewer of its two legs
        any_value(p.min_distinct_prices) as min_distinct_prices,
        any_value(p.price_type = 'blended') as blended,
        count(*) filter (where v.price_type = 'input') = 1 and count(*) filter (where v.price_type = 'output') = 1
            as both_legs,
        max(v.leg_value) as single_value,
        max(v.leg_value) filter (where v.price_type = 'input') * any_value(p.blend_input)
            + max(v.leg_value) filter (where v.price_type = 'output') * any_value(p.blend_output) as blended_value
    from valued as v
    join fix_target_params as p using (target_id)
    group by v.target_id, v.provider
)

select
    target_id,
    provider,
    segment,
    n_observations,
    capacity,
    distinct_prices,
    value_rule,
    -- the provider's one collection (source, fetch time), or nulls if its rows come from several
    case when first_source = last_source and first_observed_at = last_observed_at
         then nullif(first_source, chr(0)) end as collection_source,
    first_source = last_source and first_observed_at = last_observed_at as one_collection,
    case when first_source = last_source and first_observed_at = last_observed_at
         then first_observed_at end as collection_observed_at,
    case
        when not blended then single_value
        when both_legs then blended_value::decimal(38, 20)
    end as provider_value,
    case
        when blended and not both_legs then 'incomplete_blend'
        -- the vote floor: a provider quoting fewer distinct prices than the floor has no vote
        when distinct_prices < min_distinct_prices then 'insufficient_distinct_prices'
    end as exclusion
from combined;
