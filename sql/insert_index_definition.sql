insert into index_definitions (index_id, methodology_version, definition_json, definition_sha256, first_seen_at)
values ($index_id, $methodology_version, $definition_json, $definition_sha256, $first_seen_at)
on conflict do nothing;
