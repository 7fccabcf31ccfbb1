-- Record a final settlement (once: the primary key refuses a second one of the same contract month).
insert into settlements (
    contract_id, contract_month, contract_version, contract_sha256, index_id, first_day, last_day, finality_at,
    usd_per_gpu_hour, usd_per_mtok, mean_usd_per_gpu_hour, mean_usd_per_mtok, n_days, contract_value_usd,
    file_path, file_sha256, settled_at
)
values (
    $contract_id, $contract_month, $contract_version, $contract_sha256, $index_id, $first_day, $last_day,
    $finality_at, $usd_per_gpu_hour, $usd_per_mtok, $mean_usd_per_gpu_hour, $mean_usd_per_mtok, $n_days,
    $contract_value_usd, $file_path, $file_sha256, $settled_at
);
