"""The reporting API (`make api`): usage, clients, cycles and statements read from the marts over HTTP."""
