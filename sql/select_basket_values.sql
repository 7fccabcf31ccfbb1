-- Basket indices (methodology step 7): the equal-weight mean of the member indices' fixings of the date.
--
-- basket_members (basket_id, member_id) and basket_params (basket_id, quantile_method): registered by
-- pipeline.fixing from the definitions. member_fixings: the members' fixings of the same run (index_id,
-- fixing_date, status, value rounded to the member's precision, n_observations, input_hash, window bounds).
-- A basket averages its members' published (rounded) values, so anyone can redo it from the published files;
-- pipeline.fixing divides the sum by the count in Decimal. Quantiles as in select_index_values.sql.
with members as (
    select b.basket_id, m.*
    from basket_members as b
    join member_fixings as m on m.index_id = b.member_id
),

sets as (
    select
        basket_id, fixing_date,
        count(*) filter (where value is not null) as n,
        sum(value) as total,
        list_sort(list(value) filter (where value is not null)) as xs,
        sum(n_observations) filter (where value is not null) as n_observations,
        -- the basket is as good as its weakest member used: final < widened < carried
        max(case status when 'carried' then 3 when 'widened' then 2 when 'final' then 1 end)
            filter (where value is not null) as weakest,
        min(window_start) filter (where value is not null) as window_start,
        max(window_end) filter (where value is not null) as window_end,
        -- the lines member_id|value|member input hash (value empty if none), in byte order
        sha256(array_to_string(list_sort(list(index_id || '|' || coalesce(value::varchar, '') || '|' || input_hash)),
                               chr(10))) as input_hash
    from members
    group by basket_id, fixing_date
),

positions as (
    select
        s.basket_id, s.fixing_date, s.xs, s.n, q.q,
        case p.quantile_method
            when 'hyndman_fan_7' then 1 + ((s.n - 1) * q.q) // 4
            when 'hyndman_fan_6' then greatest(1, least(s.n, ((s.n + 1) * q.q) // 4))
            else greatest(1, (s.n * q.q + 3) // 4)
        end as lo,
        case p.quantile_method
            when 'hyndman_fan_7' then (((s.n - 1) * q.q) % 4) * 0.25
            when 'hyndman_fan_6' then
                case when ((s.n + 1) * q.q) // 4 < 1 or ((s.n + 1) * q.q) // 4 >= s.n then 0.00
                     else (((s.n + 1) * q.q) % 4) * 0.25 end
            else 0.00
        end as f
    from sets as s
    join basket_params as p using (basket_id)
    cross join (values (1), (3)) as q(q)
    where s.n > 0
),

quartiles as (
    select
        basket_id, fixing_date,
        max(xs[lo] + f * (xs[least(lo + 1, n)] - xs[lo])) filter (where q = 1) as p25_value,
        max(xs[lo] + f * (xs[least(lo + 1, n)] - xs[lo])) filter (where q = 3) as p75_value
    from positions
    group by basket_id, fixing_date
)

select
    s.basket_id,
    s.fixing_date,
    s.n as n_members,
    s.total as value_sum,
    coalesce(s.n_observations, 0) as n_observations,
    case s.weakest when 3 then 'carried' when 2 then 'widened' when 1 then 'final' end as weakest_status,
    s.window_start,
    s.window_end,
    q.p25_value,
    q.p75_value,
    s.xs[1] as min_value,
    s.xs[s.n] as max_value,
    s.input_hash
from sets as s
left join quartiles as q using (basket_id, fixing_date)
order by s.basket_id, s.fixing_date;
