"""The audit: rebuild every service from the log and compare with the live system
(``clearinghouse audit replay``); explain a clearing figure (``clearinghouse explain``)."""
