-- tsi fix --observations (pipeline.whatif): the CSV's observations as a table of the scratch in-memory
-- database (a table, not a view of the Arrow batch, so that the fixing can read rows back by rowid).
create or replace temp table observations as select * from observation_batch;
