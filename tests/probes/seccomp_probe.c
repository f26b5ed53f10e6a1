/* A static probe for the runtime tests: which system calls does the container's
 * seccomp filter refuse, and with which errno?  Prints one line per check:
 *   keyctl EPERM | clone3 ENOSYS | fork ok | thread ok
 * Built once per test session with gcc -static (the image has no libc). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static const char *name(int err) {
    switch (err) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    default: return strerror(err);
    }
}

static void *thread_main(void *arg) { return arg; }

int main(void) {
    long r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
    printf("keyctl %s\n", r == -1 ? name(errno) : "ok");
    /* A NULL clone_args: the kernel would say EFAULT, the filter says ENOSYS first. */
    r = syscall(SYS_clone3, NULL, 0);
    printf("clone3 %s\n", r == -1 ? name(errno) : "ok");
    pid_t pid = fork();
    if (pid == 0) _exit(7);
    int status = 0;
    printf("fork %s\n", pid > 0 && waitpid(pid, &status, 0) == pid && WEXITSTATUS(status) == 7 ? "ok" : "failed");
    pthread_t t;
    void *ret = NULL;
    int err = pthread_create(&t, NULL, thread_main, (void *)42);
    printf("thread %s\n", err == 0 && pthread_join(t, &ret) == 0 && ret == (void *)42 ? "ok" : "failed");
    return 0;
}
