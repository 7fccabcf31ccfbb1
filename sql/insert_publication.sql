insert into publications (path, sha256, fixing_date, byte_size, published_at)
values ($path, $sha256, $fixing_date, $byte_size, $published_at);
