-- The provider's market segment on every observation (from pipeline/catalog/providers.csv at parse time),
-- and flags that ask a person to look at a price without refusing it.

alter table observations add column segment varchar;  -- hyperscaler, specialist, marketplace, ...

create table observation_flags (
    snapshot_id  varchar not null,
    row_key      varchar not null,
    flag         varchar not null,  -- jump_vs_previous
    detail       varchar not null,
    primary key (snapshot_id, row_key, flag)
);
