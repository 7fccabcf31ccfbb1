-- Synthetic observations for tests/benchmarks/bench_fixing.py: $days days from 2025-01-01, in the shapes the
-- real sources give. Per day: 6 GPUs x 2 price types x 12 specialist clouds x 8 rows (regions, sizes),
-- one marketplace listing 60 offers of H100-SXM (1 to 8 GPUs each), and 7 models x 2 price types x 12
-- inference providers x 10 endpoints: 2,892 rows a day, 1,055,580 in 365 days. Prices are exact decimals
-- (integer units times 0.01 USD per GPU-hour, or 0.0001 USD per million tokens) scattered by a hash.
-- Rows are inserted in time order, as a live warehouse fills, so that DuckDB's row-group statistics let
-- a one-day fixing skip the rest of the history.
insert into observations (
    snapshot_id, row_key, source, provider, instrument_kind, instrument, source_instrument, price_type, region,
    gpu_count, original_price, original_currency, original_unit, usd_per_gpu_hour, usd_per_mtok, observed_at,
    segment
)
with days as (
    select range::integer as d from range($days)
),

series as (
    select * from (values
        ('gpu', 'H100-SXM', 'on_demand', 'skypilot', 'specialist', 300, 12, 8),
        ('gpu', 'H100-SXM', 'spot', 'skypilot', 'specialist', 180, 12, 8),
        ('gpu', 'H100-PCIE', 'on_demand', 'skypilot', 'specialist', 250, 12, 8),
        ('gpu', 'H100-PCIE', 'spot', 'skypilot', 'specialist', 150, 12, 8),
        ('gpu', 'H200', 'on_demand', 'skypilot', 'specialist', 400, 12, 8),
        ('gpu', 'H200', 'spot', 'skypilot', 'specialist', 240, 12, 8),
        ('gpu', 'A100-80GB', 'on_demand', 'skypilot', 'specialist', 170, 12, 8),
        ('gpu', 'A100-80GB', 'spot', 'skypilot', 'specialist', 100, 12, 8),
        ('gpu', 'L40S', 'on_demand', 'skypilot', 'specialist', 90, 12, 8),
        ('gpu', 'L40S', 'spot', 'skypilot', 'specialist', 55, 12, 8),
        ('gpu', 'RTX4090', 'on_demand', 'skypilot', 'specialist', 50, 12, 8),
        ('gpu', 'RTX4090', 'spot', 'skypilot', 'specialist', 30, 12, 8),
        ('gpu', 'H100-SXM', 'on_demand', 'vast', 'marketplace', 220, 1, 60),
        ('token', 'llama-3.3-70b', 'input', 'openrouter_endpoints', 'inference_provider', 4900, 12, 10),
        ('token', 'llama-3.3-70b', 'output', 'openrouter_endpoints', 'inference_provider', 5950, 12, 10),
        ('token', 'llama-3.1-8b', 'input', 'openrouter_endpoints', 'inference_provider', 350, 12, 10),
        ('token', 'llama-3.1-8b', 'output', 'openrouter_endpoints', 'inference_provider', 650, 12, 10),
        ('token', 'deepseek-v3-0324', 'input', 'openrouter_endpoints', 'inference_provider', 2800, 12, 10),
        ('token', 'deepseek-v3-0324', 'output', 'openrouter_endpoints', 'inference_provider', 11000, 12, 10),
        ('token', 'deepseek-r1', 'input', 'openrouter_endpoints', 'inference_provider', 18500, 12, 10),
        ('token', 'deepseek-r1', 'output', 'openrouter_endpoints', 'inference_provider', 47500, 12, 10),
        ('token', 'qwen-2.5-72b', 'input', 'openrouter_endpoints', 'inference_provider', 2650, 12, 10),
        ('token', 'qwen-2.5-72b', 'output', 'openrouter_endpoints', 'inference_provider', 4000, 12, 10),
        ('token', 'gpt-oss-120b', 'input', 'openrouter_endpoints', 'inference_provider', 1500, 12, 10),
        ('token', 'gpt-oss-120b', 'output', 'openrouter_endpoints', 'inference_provider', 6000, 12, 10),
        ('token', 'mistral-nemo', 'input', 'openrouter_endpoints', 'inference_provider', 200, 12, 10),
        ('token', 'mistral-nemo', 'output', 'openrouter_endpoints', 'inference_provider', 400, 12, 10)
    ) as s(kind, instrument, price_type, source, segment, base_units, n_providers, n_rows)
),

rows as (
    select
        d.d,
        s.*,
        p.range::integer as p,
        r.range::integer as r,
        case when s.source = 'vast' then 'vast' else s.kind || '-provider-' || lpad(p.range::varchar, 2, '0') end
            as provider
    from days as d
    cross join series as s
    cross join range(12) as p
    cross join range(60) as r
    where p.range < s.n_providers and r.range < s.n_rows
),

priced as (
    select
        *,
        -- one collection per provider and day: the fetch time, between 05:00 and 14:59 UTC
        timestamp '2025-01-01 05:00:00' + to_days(d) + to_minutes((hash(provider, d) % 600)::integer) as observed_at,
        -- integer units: the series' base, +/- 10% by provider and row, drifting +/- 5% by day
        (base_units * (900 + hash(provider, instrument, r) % 200) * (950 + hash(instrument, d) % 100)) // 1000000
            as units
    from rows
)

select
    'synthetic|' || source || '|' || provider || '|' || d as snapshot_id,
    instrument || '|' || price_type || '|' || r as row_key,
    source,
    provider,
    kind,
    instrument,
    instrument,
    price_type,
    'region-' || (r % 4),
    case when kind = 'gpu' then (1 + hash(provider, r) % 8)::decimal(12, 4) end,
    units::decimal(38, 18) * case when kind = 'gpu' then 0.01 else 0.0001 end,
    'USD',
    case when kind = 'gpu' then 'gpu_hour' else 'million_tokens' end,
    case when kind = 'gpu' then (units::decimal(20, 10) * 0.01)::decimal(20, 10) end,
    case when kind = 'token' then (units::decimal(20, 10) * 0.0001)::decimal(20, 10) end,
    observed_at,
    segment
from priced
order by observed_at, snapshot_id, row_key;
