/* The old names of the redis-server test helpers, kept for tests/unit/ledger/harness.h:
 * the helpers themselves live in testproc.h/.c (shared by the rconn, token, tokenshare
 * and ledger tests). New tests include testproc.h and use its names directly. */
#ifndef FOGATE_TEST_RCONN_SERVER_H
#define FOGATE_TEST_RCONN_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testproc.h"

#define srv testproc
#define srv_now_ms testproc_now_ms
#define srv_free_port testproc_free_port
#define srv_port_open testproc_port_open
#define srv_start testproc_start_redis
#define srv_stop testproc_stop
#define srv_rmtree testproc_rmtree
#define srv_sh testproc_sh

#endif
