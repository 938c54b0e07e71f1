-- Nothing to undo: an A-label address is a valid address.
SELECT 1;
