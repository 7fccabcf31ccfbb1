-- Futures settlements (pipeline/settlement.py, README "Settlement"): `tsi settle CONTRACT MONTH` records each
-- final settlement once, with every day it used, and publishes it as an immutable file. Like fixings, these
-- rows are never updated or deleted: settling a month again must give the same record, or it is refused.

-- The contract specifications settlements were made under (pipeline/contracts.toml), by id and version with
-- the sha256 of their canonical JSON: a changed specification that kept its version is refused.
create table settlement_contracts (
    contract_id        varchar not null,
    contract_version   varchar not null,
    definition_json    varchar not null,
    definition_sha256  varchar not null,
    first_seen_at      timestamp not null,
    primary key (contract_id, contract_version)
);

-- One final settlement per contract month. The price is in the index's unit (one of the two columns), rounded
-- to the contract's increment (at most 6 places); the mean is the exact average before rounding, kept to 20
-- places half-even (an average over 3 or 7 days need not terminate).
create table settlements (
    contract_id            varchar not null,
    contract_month         date not null,      -- the first day of the month
    contract_version       varchar not null,
    contract_sha256        varchar not null,
    index_id               varchar not null,
    first_day              date not null,      -- the settlement period, both days included
    last_day               date not null,      -- the last trading day
    finality_at            timestamp not null, -- the fixings are read as they stood at this moment
    usd_per_gpu_hour       decimal(20, 6),
    usd_per_mtok           decimal(20, 6),
    mean_usd_per_gpu_hour  decimal(38, 20),
    mean_usd_per_mtok      decimal(38, 20),
    n_days                 integer not null,   -- days whose values entered the settlement
    contract_value_usd     decimal(38, 12) not null,  -- the price times the contract unit
    file_path              varchar not null,   -- the published file, relative to the warehouse folder
    file_sha256            varchar not null,
    settled_at             timestamp not null,
    primary key (contract_id, contract_month),
    check ((usd_per_gpu_hour is null) <> (usd_per_mtok is null))
);

-- Every day of a settlement's period: the fixing it read (revision, status, value, when it was computed),
-- whether the day entered the settlement, its value there, and the fallback that gave it (from which date).
create table settlement_days (
    contract_id              varchar not null,
    contract_month           date not null,
    day                      date not null,
    used                     boolean not null,
    used_usd_per_gpu_hour    decimal(20, 4),
    used_usd_per_mtok        decimal(20, 4),
    fallback                 varchar,   -- previous_value, or null: the day's own fixing (or not used)
    fallback_from            date,      -- the date whose fixing the fallback took
    fixing_revision          integer,   -- null: no fixing of the date in the warehouse
    fixing_status            varchar not null,  -- the fixing's status, or 'missing'
    fixing_usd_per_gpu_hour  decimal(20, 4),
    fixing_usd_per_mtok      decimal(20, 4),
    fixing_computed_at       timestamp,
    note                     varchar,
    primary key (contract_id, contract_month, day)
);
