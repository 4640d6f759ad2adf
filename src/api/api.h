/* The control plane: Firecracker's REST API (HTTP/1.1 over a Unix socket, JSON bodies, the
 * same endpoints, status codes and {"fault_message": ...} errors), and --config-file. The
 * HTTP server (libmicrohttpd) runs its own thread; the VM's I/O loop stays on the main thread.
 * See README.md, "Control plane". */
#ifndef QUOKKA_API_API_H
#define QUOKKA_API_API_H

#include "vm/machine.h"

#include <stdbool.h>

struct api_options {
    const char *sock_path;             /* --api-sock PATH, or NULL */
    const char *config_file;           /* --config-file FILE, or NULL: boot right away from it */
    const struct machine_config *base; /* the command line's settings (console, devices...) */
    bool kernel_given;                 /* --kernel was on the command line */
};

/* Serve the API (and/or boot from the config file) until the VM ends; returns the process
 * exit status (the VM's, or 1/2 when quokka could not start). */
int api_main(const struct api_options *opts);

#endif
