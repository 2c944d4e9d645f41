"""Participants (hospitals and agencies) as the clearing house knows them: their keys, and
(later) their Kafka users and ACLs."""
