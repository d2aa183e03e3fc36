#pragma once
// Data pipeline: readers (IDX, CIFAR-10, CSV, npy), datasets, transforms and the loader.
#include "io/arff.hpp"
#include "io/bz2.hpp"
#include "io/cifar10.hpp"
#include "io/csv.hpp"
#include "io/gzip.hpp"
#include "io/idx.hpp"
#include "io/npy.hpp"

#include "data/augment.hpp"
#include "data/datasets.hpp"
#include "data/image.hpp"
#include "data/loader.hpp"
#include "data/sample.hpp"
#include "data/tensor_dataset.hpp"
#include "data/transform.hpp"
#include "data/transforms.hpp"
