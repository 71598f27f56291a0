// Every test process gets tfjs's gradient registry, as the library entry points do.
import '../libs/dino/src/register-gradients';
