using System.Diagnostics.CodeAnalysis;

namespace EptFuzz.Harness.Cases;

/// <summary>Either a case or the located errors that reject the whole file (exit status 2).</summary>
public sealed class ParseResult
{
    private ParseResult(EptCase? @case, IReadOnlyList<CaseError> errors)
    {
        Case = @case;
        Errors = errors;
    }

    /// <summary>The case; null when the file was rejected.</summary>
    public EptCase? Case { get; }

    /// <summary>Every error found (at most <see cref="CaseLimits.MaxErrors"/>); empty on success.</summary>
    public IReadOnlyList<CaseError> Errors { get; }

    [MemberNotNullWhen(true, nameof(Case))]
    public bool Succeeded => Case is not null;

    public static ParseResult Success(EptCase @case) => new(@case, []);

    public static ParseResult Failure(IReadOnlyList<CaseError> errors) => new(null, errors);

    /// <summary>The errors, one <c>FILE:LINE:COLUMN: message</c> per line.</summary>
    public string ErrorText() => string.Join('\n', Errors);
}
