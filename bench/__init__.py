"""Side-by-side benchmarks against the official Upstash SDKs (`make bench`)."""
