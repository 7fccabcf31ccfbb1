-- The recorded settlement of one contract month, if any: what a new settlement of it must reproduce.
select
    contract_version,
    contract_sha256,
    coalesce(usd_per_gpu_hour, usd_per_mtok) as price,
    file_path,
    file_sha256,
    settled_at
from settlements
where contract_id = $contract_id and contract_month = $contract_month;
