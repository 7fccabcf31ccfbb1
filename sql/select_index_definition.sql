-- The definition an index used under one methodology version, as canonical JSON.
select definition_json, definition_sha256
from index_definitions
where index_id = $index_id and methodology_version = $methodology_version;
