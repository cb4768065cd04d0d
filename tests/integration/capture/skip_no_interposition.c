/* skip_no_interposition: stands in for the capture test where its wrappers cannot work. */
#include <stdio.h>

/*
 * clang links a sanitizer's runtime statically into the executable, where
 * its own malloc, pthread_mutex_lock, ... already are: the test's counting
 * wrappers would collide with them (and crash at start-up), so such builds
 * skip the test. gcc's shared sanitizer runtimes work with the wrappers.
 */
int main(void)
{
    printf("SKIP: %s\n", CAPTURE_SKIP_WHY);
    return 77;
}
