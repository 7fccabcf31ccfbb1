-- Keep a contract specification a settlement used (pipeline.contracts.register_contract).
insert into settlement_contracts (contract_id, contract_version, definition_json, definition_sha256, first_seen_at)
values ($contract_id, $contract_version, $definition_json, $definition_sha256, $first_seen_at)
on conflict do nothing;
