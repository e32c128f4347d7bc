/* Process-wide metrics of the RBAC filters (gyrus_rbac_requests_total). */
#ifndef GY_FILTERS_RBAC_H
#define GY_FILTERS_RBAC_H

#include <stdio.h>

void gy_rbac_metrics(FILE *f);
void gy_rbac_shutdown(void);

#endif
