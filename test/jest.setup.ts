// Every test process gets tfjs's gradient registry, as the library entry points do.
import '../libs/dino/src/register-gradients';

// Structured logs go to stderr; keep test output to warnings unless asked.
process.env.LOG_LEVEL ??= 'warn';
