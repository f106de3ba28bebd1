"""What every test tier shares: real servers, NATS, PostgreSQL and S3 fixtures, `eventually`,
and builders of realistic requests, kernels and runs. Unit, rpc and integration tests
import from here, never from each other."""
