-- One day of a recorded settlement's period (run once per day, in the settlement's transaction).
insert into settlement_days (
    contract_id, contract_month, day, used, used_usd_per_gpu_hour, used_usd_per_mtok, fallback, fallback_from,
    fixing_revision, fixing_status, fixing_usd_per_gpu_hour, fixing_usd_per_mtok, fixing_computed_at, note
)
values (
    $contract_id, $contract_month, $day, $used, $used_usd_per_gpu_hour, $used_usd_per_mtok, $fallback,
    $fallback_from, $fixing_revision, $fixing_status, $fixing_usd_per_gpu_hour, $fixing_usd_per_mtok,
    $fixing_computed_at, $note
);
