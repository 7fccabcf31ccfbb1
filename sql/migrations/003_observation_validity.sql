-- Some sources publish a price history (llm-prices: each price with from_date / to_date). Such an
-- observation is valid over its interval, whatever day it was fetched; a fixing on date D uses it only if
-- D lies inside. Both bounds are inclusive; null means open (most sources: valid when observed).
alter table observations add column valid_from date;
alter table observations add column valid_to date;
