"""CareRoute on AWS: SQS and DynamoDB implementations of the queue and store interfaces.

    settings.py   resource names from the environment (set by serverless.yml); boto3 clients
    enqueue.py    the receive side: dedupe claim (DynamoDB conditional put) + SQS SendMessage
    journal.py    DynamoStepJournal (plugin.vendors.StepJournal) and dead-letter marks
    audit.py      DynamoAuditLog: one decision item per job, never ticket text
    tenants.py    DynamoTenantDirectory (config in DynamoDB, secrets in SSM), DynamoTokenStore
    batch.py      the worker side: SQS records → Jobs, the queue methods Worker.process calls,
                  and the batchItemFailures answer

boto3 is imported lazily (plugin/aws/settings.py), so `careroute serve` never needs it; install
the `aws` extra for this deployment.
"""
