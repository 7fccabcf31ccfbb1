select definition_sha256 from index_definitions where index_id = $index_id and methodology_version = $methodology_version;
