/* version.h - what ckube is and which Kubernetes API version it serves. */
#ifndef CK_VERSION_H
#define CK_VERSION_H
#define CK_VERSION "0.1.0"
/* The Kubernetes release whose API we serve; kubectl warns on a minor skew > 1, so 1.30 keeps
 * kubectl 1.29-1.31 silent and the rest of 1.27-1.33 only warn. */
#define CK_KUBE_MAJOR "1"
#define CK_KUBE_MINOR "30"
#define CK_KUBE_GIT_VERSION "v1.30.0-ckube"
#endif
