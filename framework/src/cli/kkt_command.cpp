// `ncflab kkt`: config → data and NCF → KKT search → structure of each point →
// kkt.json, kkt_points.pt and a readable table.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <ostream>

#include "ncflab/cli/commands.h"
#include "ncflab/core/files.h"
#include "ncflab/experiment/problem.h"
#include "ncflab/experiment/run_directory.h"
#include "ncflab/experiment/summary.h"
#include "ncflab/ncf/kkt.h"
#include "ncflab/ncf/structure.h"

namespace ncflab {
namespace {

nlohmann::json point_json(const KktPoint& point, const DirectionStructure& structure) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& layer : structure.layers) {
    layers.push_back({{"norm2", layer.norm2},
                      {"target_norm2", layer.target_norm2},
                      {"sv_ratio", layer.sv_ratio},
                      {"singular_values", layer.singular_values}});
  }
  nlohmann::json hidden = nlohmann::json::array();
  for (const auto& vector : structure.hidden) {
    hidden.push_back({{"layer", vector.layer},
                      {"sign_fraction", vector.sign_fraction},
                      {"support", vector.support},
                      {"units", vector.units},
                      {"magnitude_spread", vector.magnitude_spread}});
  }
  return {{"ncf", point.ncf},
          {"residual", point.residual},
          {"kink_residual", point.kink_residual},
          {"kinks", point.kinks},
          {"rank_one", structure.rank_one},
          {"balance_error", structure.balance_error},
          {"found_by", point.found_by},
          {"iterations", point.iterations},
          {"layers", layers},
          {"hidden", hidden},
          {"input_direction", structure.input_direction},
          {"single_neuron_residual", structure.single_neuron_residual},
          {"single_neuron",
           {{"ncf", structure.single_neuron.value},
            {"residual", structure.single_neuron.residual},
            {"kink_residual", structure.single_neuron.kink_residual},
            {"kinks", structure.single_neuron.kinks}}},
          {"chain_signs", structure.chain_signs},
          {"construction_distance", structure.construction_distance},
          {"construction_residual", structure.construction_residual},
          {"single_neuron_construction", structure.single_neuron_construction}};
}

std::string supports_text(const DirectionStructure& structure) {
  std::vector<std::string> parts;
  for (const auto& vector : structure.hidden)
    parts.push_back(fmt::format("{}/{}", vector.support, vector.units));
  return fmt::format("{}", fmt::join(parts, " "));
}

}  // namespace

std::filesystem::path kkt_command(const CommandArguments& arguments, std::ostream& out,
                                  std::ostream& err) {
  const auto started = std::chrono::steady_clock::now();
  const Config config = load_config(arguments.config_path, arguments.overrides);
  const Problem problem = build_problem(config);
  const OutputDirectory output =
      prepare_output_directory(config, OutputKind::kkt, arguments.out, arguments.overwrite, err);
  const auto& directory = output.path;
  const Ncf ncf(problem.model->options, problem.data.inputs, problem.ncf_labels);
  const auto options = kkt_search_options(config);
  out << fmt::format("kkt: {} starts on {} (L = {}, P = {}), tol {:g}\n", options.restarts(),
                     describe_model(ncf.options()), ncf.total_degree(), ncf.parameters(),
                     options.tol());
  const auto result = search_kkt_points(ncf, options, [&err](const KktProgress& progress) {
    err << fmt::format("kkt: iteration {:>6}  {} starts still ascending  best N {:.6g}\n",
                       progress.iteration, progress.active, progress.best_ncf)
        << std::flush;
  });

  const auto structure_options =
      StructureOptions(config.kkt.structure).kink_tol(options.kink_tol());
  nlohmann::json points = nlohmann::json::array();
  int64_t rank_one = 0;
  int64_t constructed = 0;
  std::vector<std::vector<torch::Tensor>> per_layer(static_cast<size_t>(ncf.degrees().size()));
  out << fmt::format("{:>3}  {:>12}  {:>9}  {:>9}  {:>5}  {:>8}  {:>9}  {:>6}  {:>10}  {}\n", "#",
                     "N(u)", "residual", "kink res", "kinks", "rank-one", "1-neuron", "found",
                     "sv2/sv1 max", "hidden support");
  for (size_t k = 0; k < result.points.size(); ++k) {
    const auto& point = result.points[k];
    const auto structure = analyze_structure(ncf, point.direction, structure_options);
    rank_one += structure.rank_one ? 1 : 0;
    constructed += structure.single_neuron_construction ? 1 : 0;
    points.push_back(point_json(point, structure));
    double worst_ratio = 0;
    for (const auto& layer : structure.layers) worst_ratio = std::max(worst_ratio, layer.sv_ratio);
    out << fmt::format(
        "{:>3}  {:>12.8g}  {:>9.2e}  {:>9.2e}  {:>5}  {:>8}  {:>9}  {:>6}  {:>10.2e}  {}\n", k + 1,
        point.ncf, point.residual, point.kink_residual, point.kinks,
        structure.rank_one ? "yes" : "no", structure.single_neuron_construction ? "yes" : "no",
        point.found_by, worst_ratio, supports_text(structure));
    const auto layers = ncf.layers(point.direction.unsqueeze(0));
    for (size_t l = 0; l < layers.size(); ++l) per_layer[l].push_back(layers[l][0]);
  }
  const double share =
      result.points.empty() ? 0.0 : static_cast<double>(rank_one) / result.points.size();
  out << fmt::format(
      "kkt: {} distinct non-negative KKT points from {} starts ({} converged, {} ended at N < 0, "
      "{} unconverged{}); rank-one share {:.3g}, of which {} the construction of a single-neuron "
      "KKT point\n",
      result.points.size(), result.restarts, result.converged, result.negative, result.unconverged,
      result.unconverged > 0
          ? fmt::format(", best residual among them {:.2e}", result.best_unconverged_residual)
          : "",
      share, constructed);

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const nlohmann::json report = {
      {"homogeneity", homogeneity_json(ncf.degrees())},
      {"restarts", result.restarts},
      {"converged", result.converged},
      {"negative", result.negative},
      {"unconverged", result.unconverged},
      {"tol", options.tol()},
      {"kink_tol", options.kink_tol()},
      {"rank_one_tol", structure_options.rank_one_tol()},
      {"rank_one_share", share},
      {"single_neuron_construction_share",
       result.points.empty() ? 0.0 : static_cast<double>(constructed) / result.points.size()},
      {"points", points},
      {"wall_seconds", seconds}};
  write_file_atomically(directory / "kkt.json", report.dump(2) + "\n");
  if (!result.points.empty()) {
    std::vector<torch::Tensor> stacked;
    for (const auto& layer : per_layer) stacked.push_back(torch::stack(layer));
    save_tensor_dict(directory / "kkt_points.pt", named_layers(stacked));
  }
  out << fmt::format("kkt: wrote {} ({:.1f} s)\n", (directory / "kkt.json").string(), seconds);
  return directory;
}

}  // namespace ncflab
