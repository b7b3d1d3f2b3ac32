/* The httpd and APR declarations mod_tls binds to. bindgen reads the headers installed with
 * httpd (apxs -q INCLUDEDIR) and APR (apxs -q APR_INCLUDEDIR); nothing of httpd is copied here. */
#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <http_vhost.h>
#include <ap_listen.h>
#include <ap_mmn.h>
#include <ap_mpm.h>
#include <ap_provider.h>
#include <ap_socache.h>
#include <mpm_common.h>
#include <util_filter.h>
#include <util_mutex.h>
#include <mod_status.h>
#include <apr_buckets.h>
#include <apr_network_io.h>
#include <apr_optional.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
