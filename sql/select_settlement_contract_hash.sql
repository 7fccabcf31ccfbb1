-- The sha256 of the specification used under a contract id and version, if any.
select definition_sha256
from settlement_contracts
where contract_id = $contract_id and contract_version = $contract_version;
