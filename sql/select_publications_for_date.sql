select path, sha256 from publications where fixing_date = $fixing_date order by published_at, path;
