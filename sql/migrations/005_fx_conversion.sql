-- Currency conversion of non-USD price lists (DeepSeek's Chinese page prices in CNY). The rate used and the
-- date it was published for are kept on each converted observation, so that anyone can redo the product:
-- usd_per_mtok = original price per million tokens x fx_usd_per_unit, rounded half-even to 10 places.
-- Both are null on USD rows.
alter table observations add column fx_usd_per_unit decimal(20, 10);
alter table observations add column fx_rate_date date;

-- The number the ECB published (units of the currency per euro; 1 for EUR itself), beside the USD cross
-- rate derived from it, so that the cross rate can be checked without re-reading the raw body.
alter table fx_rates add column units_per_eur decimal(20, 10);
