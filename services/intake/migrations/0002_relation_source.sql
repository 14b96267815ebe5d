-- Relations keep their provenance: the BRP, a court order, or a declaration. Relations recorded
-- before this was kept have none (NULL) and show as unspecified.
ALTER TABLE intake.relations
    ADD COLUMN source text CHECK (source IN ('BRP', 'COURT_ORDER', 'DECLARATION'));
