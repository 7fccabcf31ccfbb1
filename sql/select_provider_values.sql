-- Methodology step 2b: one value per provider and target (one provider, one vote), and the vote floor.
--
-- fixing_digests, fixing_rows: the outputs of select_fixing_digests.sql and select_fixing_rows.sql (the rows
-- only of the providers whose value needs them). fix_target_params: one row per target with its index's
-- parameters.
--
-- Every median here is exact in DECIMAL: quantile_disc(x, 0.5) returns an observed value, the lower middle
-- one (0-based position floor((n - 1) / 2)); -quantile_disc(-x, 0.5) the upper middle one. Their mean is the
-- middle value on an odd count and half the sum of the two middle values on an even count. No float. A
-- digest keeps its rows' two middle values, so a leg of one digest has its median without its rows.
with digest_legs as (
    -- each provider's leg (a price type; a blended price has two) with its counts, from its digests
    select
        target_id, provider, price_type,
        min(segment) as segment,
        min(value_rule) as value_rule,
        count(*) as n_digests,
        sum(n_rows) as n_observations,
        sum(capacity) as capacity,  -- GPUs listed (rows without a GPU count weigh 1): capped_weight_median
        (min(lower_median) + min(upper_median)) * 0.5 as digest_median,  -- used when there is one digest
        min(n_prices) as digest_prices,
        min(snapshot_id) as snapshot_id,
        max(observed_at) as observed_at,  -- the collection's fetch time (its bodies share it)
        max(valid_until) as valid_until   -- an imported collection's last date (tsi import), else null
    from fixing_digests
    group by target_id, provider, price_type
),

row_legs as (
    -- the legs of several digests, from their rows: the median of all of them, and their distinct prices
    -- where the index has a vote floor (the costliest aggregate here)
    select
        r.target_id, r.provider, r.price_type,
        (quantile_disc(r.usd_price, 0.5) - quantile_disc(-r.usd_price, 0.5)) * 0.5 as row_median,
        case when any_value(p.min_distinct_prices) > 1 then count(distinct r.usd_price) end as row_prices
    from fixing_rows as r
    semi join digest_legs as m
        on m.target_id = r.target_id and m.provider = r.provider and m.price_type = r.price_type and m.n_digests > 1
    join fix_target_params as p on p.target_id = r.target_id
    group by r.target_id, r.provider, r.price_type
),

ruled as (
    -- the median_of_rows value of each leg, and its distinct prices (null where the index has no vote floor:
    -- a provider with a row always has one)
    select
        l.* exclude (digest_median, digest_prices),
        case when l.n_digests = 1 then l.digest_median else r.row_median end as row_median,
        case when p.min_distinct_prices > 1 then
            case when l.n_digests = 1 then l.digest_prices else r.row_prices end
        end as distinct_prices
    from digest_legs as l
    join fix_target_params as p using (target_id)
    left join row_legs as r
        on r.target_id = l.target_id and r.provider = l.provider and r.price_type = l.price_type
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
        -- the least of its collection's bodies (several only for a paged API or a provider of two sources)
        min(v.snapshot_id) as snapshot_id,
        max(v.observed_at) as observed_at,
        max(v.valid_until) as valid_until,
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
    snapshot_id,
    observed_at,
    valid_until,
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
