-- The estimator (methodology v1, step 4) over provider values: the median, plus dispersion.
--
-- provider_values: registered by the caller (index_id, provider, provider_value, n_observations,
-- observations_sha256), holding the providers that count after any screen.
--
-- Quantiles use linear interpolation between order statistics (Hyndman-Fan type 7, as quantile_cont):
-- h = (n - 1) p, q = x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]), with 0-based x. With p = 0.25 and
-- 0.75 the fraction h - floor h is a multiple of 0.25, so every step stays exact in DECIMAL.
with ordered as (
    select
        *,
        row_number() over (partition by index_id order by provider_value, provider) - 1 as k,
        count(*) over (partition by index_id) as n
    from provider_values
),

positions as (
    select
        *,
        (n - 1) // 4 as p25_floor,
        ((n - 1) % 4) * 0.25 as p25_frac,
        (3 * (n - 1)) // 4 as p75_floor,
        ((3 * (n - 1)) % 4) * 0.25 as p75_frac
    from ordered
)

select
    index_id,
    any_value(n)::integer as n_providers,
    sum(n_observations)::integer as n_observations,
    (
        max(provider_value) filter (where k = (n - 1) // 2)
        + max(provider_value) filter (where k = n // 2)
    ) * 0.5 as median_value,
    max(provider_value) filter (where k = p25_floor)
        + any_value(p25_frac) * (
            coalesce(max(provider_value) filter (where k = p25_floor + 1), max(provider_value) filter (where k = p25_floor))
            - max(provider_value) filter (where k = p25_floor)
        ) as p25_value,
    max(provider_value) filter (where k = p75_floor)
        + any_value(p75_frac) * (
            coalesce(max(provider_value) filter (where k = p75_floor + 1), max(provider_value) filter (where k = p75_floor))
            - max(provider_value) filter (where k = p75_floor)
        ) as p75_value,
    min(provider_value) as min_value,
    max(provider_value) as max_value,
    sha256(string_agg(provider || '|' || observations_sha256, chr(10) order by provider)) as input_hash
from positions
group by index_id
order by index_id;
