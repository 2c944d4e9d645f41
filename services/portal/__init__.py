"""The agencies' and auditors' portal: pages and a JSON API over the clearing service's
published results and ledgers, and the agencies' answers published on Kafka (issue 15)."""
