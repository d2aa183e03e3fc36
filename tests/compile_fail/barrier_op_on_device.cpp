// A user-defined barrier op with a CPU kernel only, handed device operands: one readable message.
#include <xgrad/device.hpp>

struct cpu_only_double {
    static constexpr const char* name = "cpu_only_double";
    xgrad::shape_t output_shape(const xgrad::shape_t& s) const { return s; }
    xgrad::tensor<float> forward(const xgrad::tensor<float>& x) const { return xgrad::eval(x * 2.0f); }
    void backward(const xgrad::tensor<float>& g, const xgrad::tensor<float>&,
                  const std::array<xgrad::tensor<float>, 1>&, std::array<xgrad::tensor<float>*, 1> gi) const {
        if (gi[0]) *gi[0] = xgrad::eval(g * 2.0f);
    }
};

int main() {
    auto a = xgrad::zeros<float, xgrad::device::thrust_cpp>({2, 3});
    auto y = xgrad::eval(xgrad::make_op(cpu_only_double{}, a));
    (void)y;
}
