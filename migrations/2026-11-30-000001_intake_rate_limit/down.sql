DROP TABLE intake_rate_buckets;
