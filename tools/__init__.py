"""The tools around the three services: the audit, the demo, the bench, the enrolment
import, the participants' keys and logins, the docs generator. None of them is a
service: each reads or drives the services from outside, through Kafka, the services'
query modules, or the reference data."""
